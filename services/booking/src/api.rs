//! The gRPC handlers of `coldchain.booking.v1.BookingService`, a few lines each: who is
//! calling, the request in form ([`crate::wire`]), the use case ([`crate::app`]), the
//! answer rendered.

use std::sync::Arc;

use coldchain_audit::Author;
use coldchain_proto::booking::v1 as pb;
use coldchain_proto::booking::v1::booking_service_server::BookingService;
use coldchain_runtime::auth::author;
use coldchain_runtime::idempotency::record_request_id;
use tonic::{Request, Response, Status};

use crate::app::BookingApp;
use crate::domain::{Booking, BoundCustomer};
use crate::wire::{self, requests};

/// The handlers, on the site's bookings.
#[derive(Clone)]
pub struct Api {
    app: Arc<BookingApp>,
}

impl Api {
    /// Handlers over `app`.
    pub fn new(app: Arc<BookingApp>) -> Self {
        Self { app }
    }

    fn booking(&self, booking: Booking) -> Response<pb::Booking> {
        Response::new(wire::booking(self.app.site_id(), booking))
    }
}

/// The customer a booking client is bound to; `None` for every other caller (and when the
/// server runs without authentication).
fn bound_customer<T>(request: &Request<T>) -> Option<BoundCustomer> {
    let principal = coldchain_runtime::auth::principal(request)?;
    Some(BoundCustomer {
        credential: principal.id.clone(),
        customer: principal.customer()?.to_owned(),
    })
}

#[tonic::async_trait]
impl BookingService for Api {
    async fn get_availability(
        &self,
        request: Request<pb::GetAvailabilityRequest>,
    ) -> Result<Response<pb::GetAvailabilityResponse>, Status> {
        let query = requests::get_availability(request.get_ref(), self.app.today())?;
        let rows = self.app.availability(&query).await?;
        Ok(Response::new(wire::availability(rows)))
    }

    async fn hold_space(
        &self,
        request: Request<pb::HoldSpaceRequest>,
    ) -> Result<Response<pb::Booking>, Status> {
        let author = author(&request, &request.get_ref().actor);
        let caller = bound_customer(&request);
        let r = request.into_inner();
        self.app.may_hold_for(caller.as_ref(), &r.customer_id)?;
        record_request_id(&r.request_id);
        let call = requests::hold_space(&r)?;
        let booking = self.app.hold(&call.request, &call.command, &author).await?;
        Ok(self.booking(booking))
    }

    async fn confirm_booking(
        &self,
        request: Request<pb::ConfirmBookingRequest>,
    ) -> Result<Response<pb::Booking>, Status> {
        let author = author(&request, &request.get_ref().actor);
        let caller = bound_customer(&request);
        let r = request.into_inner();
        self.app.check_owner(caller.as_ref(), &r.booking_id)?;
        record_request_id(&r.request_id);
        let call = requests::confirm_booking(&r)?;
        self.transition(call, &author).await
    }

    async fn cancel_booking(
        &self,
        request: Request<pb::CancelBookingRequest>,
    ) -> Result<Response<pb::Booking>, Status> {
        let author = author(&request, &request.get_ref().actor);
        let caller = bound_customer(&request);
        let r = request.into_inner();
        self.app.check_owner(caller.as_ref(), &r.booking_id)?;
        record_request_id(&r.request_id);
        let call = requests::cancel_booking(&r)?;
        self.transition(call, &author).await
    }

    async fn check_in(
        &self,
        request: Request<pb::CheckInRequest>,
    ) -> Result<Response<pb::Booking>, Status> {
        let author = author(&request, &request.get_ref().actor);
        let r = request.into_inner();
        record_request_id(&r.request_id);
        let call = requests::check_in(&r)?;
        self.transition(call, &author).await
    }

    async fn complete_booking(
        &self,
        request: Request<pb::CompleteBookingRequest>,
    ) -> Result<Response<pb::Booking>, Status> {
        let author = author(&request, &request.get_ref().actor);
        let r = request.into_inner();
        record_request_id(&r.request_id);
        let call = requests::complete_booking(&r)?;
        self.transition(call, &author).await
    }

    async fn get_booking(
        &self,
        request: Request<pb::GetBookingRequest>,
    ) -> Result<Response<pb::Booking>, Status> {
        let caller = bound_customer(&request);
        self.app
            .check_owner(caller.as_ref(), &request.get_ref().booking_id)?;
        let booking_id = requests::get_booking(request.get_ref())?;
        Ok(self.booking(self.app.get(booking_id)?))
    }

    async fn list_bookings(
        &self,
        request: Request<pb::ListBookingsRequest>,
    ) -> Result<Response<pb::ListBookingsResponse>, Status> {
        let caller = bound_customer(&request);
        let r = request.get_ref();
        let customer = self.app.list_customer(caller.as_ref(), &r.customer_id)?;
        let list = requests::list_bookings(r, &customer)?;
        let page = self
            .app
            .list(&list.query, list.after.as_deref(), list.limit)?;
        Ok(Response::new(wire::list_page(
            self.app.site_id(),
            page,
            &list,
        )))
    }
}

impl Api {
    /// The one path of the four transitions: the use case, then the answer.
    async fn transition(
        &self,
        call: wire::Call<wire::TransitionCall>,
        author: &Author,
    ) -> Result<Response<pb::Booking>, Status> {
        let booking = self
            .app
            .transition(
                &call.request,
                &call.command.booking_id,
                &call.command.transition,
                author,
            )
            .await?;
        Ok(self.booking(booking))
    }
}
