package rules_test

import (
	"reflect"
	"testing"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/api/events/rules"
)

// The rules.example at the repository root loads, and routes a sample of every event it
// names as the guide's listeners do.
func TestRulesExample(t *testing.T) {
	s, err := rules.Load("../../../rules.example")
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		receiver, sender, typ, object, message string
		channels                               []herald.Channel
		escalate, digest                       bool
	}
	rt := []herald.Channel{herald.ChannelRealtime}
	rte := []herald.Channel{herald.ChannelRealtime, herald.ChannelEmail}
	cases := []struct {
		event string
		data  string
		want  []want
	}{
		{"project.created", `{"projectId": "p1", "projectTitle": "Atlas", "ownerId": "u1", "ownerName": "John Doe"}`, []want{
			{"u1", "u1", "project.created", "project.created", `Your project "Atlas" was created successfully!`, rt, false, false},
		}},
		{"tenant.acme.project.created", `{"projectId": "p1", "projectTitle": "Atlas", "ownerId": "u1"}`, []want{
			{"u1", "u1", "project.created", "project.created", `Your project "Atlas" was created successfully!`, rt, false, false},
		}},
		{"project.role.application.created", `{"projectOwnerId": "u1", "applicantId": "u9", "applicantName": "Ada", "projectTitle": "Atlas", "roleName": "Backend", "applicationId": "a1"}`, []want{
			{"u1", "u9", "project.role.application.created", "project.application.received", `Ada applied for the role "Backend" in your project "Atlas"`, rte, false, false},
			{"u9", "system", "project.role.application.created", "project.application.sent", `Your application for the role "Backend" in the project "Atlas" was sent`, rt, false, false},
		}},
		{"project.role.application.accepted", `{"applicantId": "u9", "projectTitle": "Atlas", "roleName": "Backend", "projectId": "p1"}`, []want{
			{"u9", "system", "project.role.application.accepted", "project.application.accepted", `Congratulations! Your application for the role "Backend" in the project "Atlas" has been accepted`, rte, false, false},
		}},
		{"project.role.application.rejected", `{"applicantId": "u9", "projectTitle": "Atlas", "roleName": "Backend", "projectId": "p1"}`, []want{
			{"u9", "system", "project.role.application.rejected", "project.application.rejected", `Your application for the role "Backend" in the project "Atlas" was declined`, rte, false, false},
		}},
		{"project.updated", `{"projectId": "p1", "projectTitle": "Atlas", "updatedById": "u1", "updatedByName": "John", "memberIds": ["u2", "u3"]}`, []want{
			{"u2", "u1", "project.updated", "project.updated", `John updated the project "Atlas"`, rt, false, true},
			{"u3", "u1", "project.updated", "project.updated", `John updated the project "Atlas"`, rt, false, true},
		}},
		{"project.deleted", `{"projectId": "p1", "projectTitle": "Atlas", "deletedById": "u1", "memberIds": ["u2"]}`, []want{
			{"u2", "u1", "project.deleted", "project.deleted", `The project "Atlas" was deleted`, rte, false, false},
		}},
		{"project.published", `{"projectId": "p1", "projectTitle": "Atlas", "ownerId": "u1"}`, []want{
			{"u1", "system", "project.published", "project.published", `Your project "Atlas" is now published`, rt, false, false},
		}},
		{"project.role.assigned", `{"projectId": "p1", "projectTitle": "Atlas", "roleName": "Backend", "assigneeId": "u9", "assignedById": "u1"}`, []want{
			{"u9", "u1", "project.role.assigned", "project.role.assigned", `You were assigned the role "Backend" in the project "Atlas"`, rt, false, false},
		}},
		{"project.role.unassigned", `{"projectId": "p1", "projectTitle": "Atlas", "roleName": "Backend", "assigneeId": "u9", "assignedById": "u1"}`, []want{
			{"u9", "u1", "project.role.unassigned", "project.role.unassigned", `You are no longer assigned the role "Backend" in the project "Atlas"`, rt, false, false},
		}},
		{"project.member.joined", `{"projectId": "p1", "projectTitle": "Atlas", "ownerId": "u1", "memberId": "u5", "memberName": "Grace"}`, []want{
			{"u1", "u5", "project.member.joined", "project.member.joined", `Grace joined your project "Atlas"`, rt, false, true},
		}},
		{"project.member.left", `{"projectId": "p1", "projectTitle": "Atlas", "ownerId": "u1", "memberId": "u5", "memberName": "Grace"}`, []want{
			{"u1", "u5", "project.member.left", "project.member.left", `Grace left your project "Atlas"`, rt, false, true},
		}},
		{"project.invite.sent", `{"projectId": "p1", "projectTitle": "Atlas", "inviteeId": "u7", "inviterId": "u1", "inviterName": "John"}`, []want{
			{"u7", "u1", "project.invite.sent", "project.invite.sent", `John invited you to join the project "Atlas"`, rt, true, false},
		}},
		{"project.stats.updated", `{"totalProjects": 3}`, nil},
	}
	for _, c := range cases {
		out := mustRoute(t, s, rules.Event{Name: c.event, Data: data(t, c.data), IdempotencyKey: "k-" + c.event})
		if len(out) != len(c.want) {
			t.Errorf("%s: %d notifications, want %d", c.event, len(out), len(c.want))
			continue
		}
		for i, w := range c.want {
			n := out[i].Notification
			got := want{n.ReceiverID, n.SenderID, n.Type, n.Object, "", n.Channels, out[i].Escalate != nil, out[i].Digest != nil}
			if m, ok := payload(t, out[i])["message"].(string); ok {
				got.message = m
			}
			if !reflect.DeepEqual(got, w) {
				t.Errorf("%s [%d]:\n got %+v\nwant %+v", c.event, i, got, w)
			}
			if n.IdempotencyKey == "" {
				t.Errorf("%s [%d]: no idempotency key", c.event, i)
			}
		}
	}
}
